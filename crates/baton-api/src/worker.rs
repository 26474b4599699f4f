//! The worker protocol: claim, renew, complete, fail.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use baton_core::{
    CapabilityName, Claim, ClaimRequest, ExecutionId, Failure, Kind, Lane, LeaseToken, Namespace,
    RenewRequest, RenewStatus, Result, State, TagKey, Timestamp, Upstream, WaitEnded, WorkerId,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{DEFAULT_LEASE_MS, JsonText, check_json, namespace_or_default, raw_bytes};

fn default_lease_ms() -> u64 {
    DEFAULT_LEASE_MS
}

fn default_max() -> usize {
    1
}

fn default_true() -> bool {
    true
}

/// The body of `POST /v1/lanes/{lane}/claim`.
///
/// ```
/// use baton_api::ClaimBody;
/// let body: ClaimBody = serde_json::from_str(r#"{"worker_id": "w1"}"#).unwrap();
/// assert_eq!((body.max, body.lease_ms, body.wait_ms), (1, 30_000, 0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// Namespace; `default` when absent.
    #[serde(default)]
    pub namespace: Option<Namespace>,
    /// The claiming worker, recorded on the attempt.
    pub worker_id: WorkerId,
    /// What the worker offers.
    #[serde(default)]
    pub capabilities: BTreeSet<CapabilityName>,
    /// Most executions to claim; 1 when absent.
    #[serde(default = "default_max")]
    pub max: usize,
    /// Lease length in milliseconds; 30 000 when absent.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// How long to wait for work when there is none, in milliseconds
    /// (the server caps it); 0 answers at once.
    #[serde(default)]
    pub wait_ms: u64,
    /// More lanes claimed from together with the URL's, up to
    /// [`ClaimRequest::MAX_LANES`] in all: one claim over every lane, in
    /// which priority and age decide across lanes. Absent (empty) claims
    /// from the URL's lane alone, so a one-lane body is what servers
    /// without this field accept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lanes: Vec<Lane>,
    /// The handler versions the worker runs; absent takes every version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<VersionRangeBody>,
    /// How long the worker keeps a session after its last claim or renew
    /// of the session's work, in milliseconds; 30 000 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_idle_ms: Option<u64>,
}

/// A range of handler versions, both ends inclusive and optional:
/// `{"min": "2", "max": "2.999"}`.
///
/// ```
/// use baton_api::VersionRangeBody;
/// let body: VersionRangeBody = serde_json::from_str(r#"{"min": "2"}"#).unwrap();
/// let range = body.into_range();
/// assert!(range.accepts(Some(&"3.1".parse().unwrap())));
/// assert!(!range.accepts(Some(&"1.9".parse().unwrap())));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRangeBody {
    /// Lowest version accepted; absent: no lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<baton_core::Version>,
    /// Highest version accepted; absent: no upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<baton_core::Version>,
}

impl VersionRangeBody {
    /// The range this body names.
    pub fn into_range(self) -> baton_core::VersionRange {
        baton_core::VersionRange::between(self.min, self.max)
    }
}

impl From<&baton_core::VersionRange> for VersionRangeBody {
    fn from(r: &baton_core::VersionRange) -> Self {
        VersionRangeBody {
            min: r.min.clone(),
            max: r.max.clone(),
        }
    }
}

impl ClaimBody {
    /// The body claiming up to `max` executions for `request`'s worker from
    /// every lane of the request, waiting up to `wait`; it is sent to the
    /// claim route of the request's first lane, and the others are named in
    /// [`lanes`](Self::lanes).
    pub fn new(request: &ClaimRequest, max: usize, wait: Duration) -> Self {
        ClaimBody {
            lanes: request.lanes.iter().skip(1).cloned().collect(),
            namespace: Some(request.namespace.clone()),
            worker_id: request.worker_id.clone(),
            capabilities: request.capabilities.clone(),
            max,
            lease_ms: request.lease_ttl.as_millis() as u64,
            wait_ms: wait.as_millis() as u64,
            versions: (!request.versions.is_any()).then(|| (&request.versions).into()),
            session_idle_ms: (request.session_idle != baton_core::DEFAULT_SESSION_IDLE)
                .then_some(request.session_idle.as_millis() as u64),
        }
    }

    /// The claim of `lane` (the URL's) and of [`lanes`](Self::lanes) this
    /// body asks for, and how long it may wait. A lane named twice is
    /// claimed from once.
    ///
    /// # Errors
    /// None today (the default namespace is a valid name); the request is
    /// checked by the backend.
    pub fn into_request(self, lane: Lane) -> Result<(ClaimRequest, Duration)> {
        let mut request = ClaimRequest::new(
            namespace_or_default(self.namespace)?,
            lane,
            self.worker_id,
            self.max,
        )
        .with_capabilities(self.capabilities)
        .with_lease_ttl(Duration::from_millis(self.lease_ms));
        if let Some(v) = self.versions {
            request = request.with_versions(v.into_range());
        }
        if let Some(ms) = self.session_idle_ms {
            request = request.with_session_idle(Duration::from_millis(ms));
        }
        for more in self.lanes {
            if !request.lanes.contains(&more) {
                request = request.with_lane(more);
            }
        }
        Ok((request, Duration::from_millis(self.wait_ms)))
    }
}

/// The answer of a claim: the executions now leased to the worker, possibly
/// none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimAnswer {
    /// The claimed executions.
    pub claims: Vec<ClaimedExecution>,
}

/// One claimed execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimedExecution {
    /// The execution.
    pub id: ExecutionId,
    /// Its namespace.
    pub namespace: Namespace,
    /// The lane it was claimed from.
    pub lane: Lane,
    /// Handler name.
    pub kind: Kind,
    /// The payload, as the text stored ([`JsonText`]).
    pub payload: JsonText,
    /// This attempt's number, 1-based.
    pub attempt: u32,
    /// The lease to present to renew, complete and fail.
    pub lease: Lease,
    /// The execution's deadline, if any.
    #[serde(default)]
    pub deadline: Option<Timestamp>,
    /// The execution's tags.
    #[serde(default)]
    pub tags: BTreeMap<TagKey, String>,
    /// The outcomes of the executions it depends on, by id; absent for an
    /// execution without dependencies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstream: BTreeMap<ExecutionId, UpstreamBody>,
    /// How each of its ended waits ended (`signalled` | `timed_out`),
    /// oldest first; absent for an execution that never suspended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<WaitEnded>,
    /// The signals its ended waits consumed, oldest first, each naming its
    /// wait; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<crate::SignalBody>,
    /// The outputs of its done steps, by name, for the attempt to replay;
    /// absent when none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<baton_core::StepName, JsonText>,
    /// Its session, which the worker now holds; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<baton_core::SessionName>,
    /// The handler version it was written for; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<baton_core::Version>,
}

/// One upstream execution's outcome in a claim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpstreamBody {
    /// Its state when the dependent was claimed.
    pub state: State,
    /// Its result, as the text stored; `null` unless it completed with one.
    #[serde(default)]
    pub result: Option<JsonText>,
}

/// A lease as handed out by a claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The fencing token.
    pub token: LeaseToken,
    /// When it runs out unless renewed.
    pub expires_at: Timestamp,
}

impl From<&Claim> for ClaimedExecution {
    fn from(c: &Claim) -> Self {
        ClaimedExecution {
            id: c.id.clone(),
            namespace: c.namespace.clone(),
            lane: c.lane.clone(),
            kind: c.kind.clone(),
            payload: JsonText::from_bytes(&c.payload),
            attempt: c.attempt,
            lease: Lease {
                token: c.lease.clone(),
                expires_at: c.lease_expires_at,
            },
            deadline: c.deadline,
            tags: c.tags.clone(),
            upstream: c
                .upstream
                .iter()
                .map(|(id, u)| {
                    let body = UpstreamBody {
                        state: u.state,
                        result: u.result.as_deref().map(JsonText::from_bytes),
                    };
                    (id.clone(), body)
                })
                .collect(),
            waits: c.waits.clone(),
            signals: c.signals.iter().map(crate::SignalBody::from).collect(),
            steps: crate::memory::steps_json(&c.steps),
            session: c.session.clone(),
            version: c.version.clone(),
        }
    }
}

impl ClaimedExecution {
    /// The `baton-core` claim this answer describes.
    ///
    /// # Errors
    /// None today; kept fallible for fields that may need checking.
    pub fn into_claim(self) -> Result<Claim> {
        Ok(Claim {
            session: self.session,
            version: self.version,
            id: self.id,
            namespace: self.namespace,
            lane: self.lane,
            kind: self.kind,
            payload: self.payload.into_bytes(),
            attempt: self.attempt,
            lease: self.lease.token,
            lease_expires_at: self.lease.expires_at,
            deadline: self.deadline,
            tags: self.tags,
            upstream: self
                .upstream
                .into_iter()
                .map(|(id, u)| {
                    let upstream = Upstream {
                        state: u.state,
                        result: u.result.map(JsonText::into_bytes),
                    };
                    (id, upstream)
                })
                .collect(),
            waits: self.waits,
            signals: self
                .signals
                .into_iter()
                .map(crate::SignalBody::into_signal)
                .collect(),
            steps: self
                .steps
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect(),
        })
    }
}

/// The body of `POST /v1/leases/renew`. Tokens are text: a malformed one is
/// answered `lost`, like any other lease that is not the caller's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    /// The worker renewing.
    pub worker_id: WorkerId,
    /// New lease length from now, in milliseconds; 30 000 when absent.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// The lease tokens to renew.
    pub leases: Vec<String>,
}

impl From<&RenewRequest> for RenewBody {
    fn from(r: &RenewRequest) -> Self {
        RenewBody {
            worker_id: r.worker_id.clone(),
            lease_ms: r.lease_ttl.as_millis() as u64,
            leases: r.leases.iter().map(|l| l.to_string()).collect(),
        }
    }
}

/// The answer of a renew: one item per lease, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewAnswer {
    /// What happened to each lease.
    pub leases: Vec<RenewedLease>,
}

/// What happened to one lease of a renew.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewedLease {
    /// The token as sent.
    pub token: String,
    /// `renewed`, `lost` (stop, do not complete), `cancelled` or `paused`
    /// (an operator ended the attempt: stop, do not report). A status this
    /// build does not know reads as `lost`: stopping is always safe, and a
    /// newer server may add statuses.
    #[serde(deserialize_with = "status_or_lost")]
    pub status: RenewStatus,
    /// The new expiry when renewed, else `null`.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

fn status_or_lost<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<RenewStatus, D::Error> {
    let text = String::deserialize(d)?;
    Ok(serde_json::from_value(serde_json::Value::String(text)).unwrap_or(RenewStatus::Lost))
}

/// The body of `POST /v1/executions/{id}/wait-children`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitChildrenBody {
    /// The lease of the running attempt that waits.
    pub lease: LeaseToken,
}

/// The body of `POST /v1/executions/{id}/complete`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// The lease of the attempt.
    pub lease: LeaseToken,
    /// Any JSON value, stored exactly as sent; `null` when absent.
    #[serde(default)]
    pub result: Option<Box<RawValue>>,
}

impl CompleteBody {
    /// The body completing `lease` with `result` bytes: their JSON text
    /// unchanged, or a JSON string when they are not JSON
    /// ([`JsonText::from_bytes`]).
    ///
    /// # Errors
    /// `InvalidInput` for JSON that [`check_json`] refuses.
    pub fn new(lease: &LeaseToken, result: &[u8]) -> Result<Self> {
        let result = JsonText::from_bytes(result);
        check_json("result", result.get())?;
        Ok(CompleteBody {
            lease: lease.clone(),
            result: Some(result.into_raw()),
        })
    }

    /// The lease and the result bytes to store: the JSON text as sent,
    /// `null` when absent.
    ///
    /// # Errors
    /// `InvalidInput` (field `result`) for JSON that [`check_json`] refuses.
    pub fn into_result(self) -> Result<(LeaseToken, Vec<u8>)> {
        if let Some(result) = &self.result {
            check_json("result", result.get())?;
        }
        Ok((self.lease, raw_bytes(self.result)))
    }
}

/// The body of `POST /v1/executions/{id}/fail`.
///
/// ```
/// use baton_api::FailBody;
/// use baton_core::{ExecutionId, LeaseToken, PartitionCount};
/// let lease = LeaseToken::new(ExecutionId::generate(PartitionCount::DEFAULT), 1, 7);
/// let body: FailBody = serde_json::from_str(&format!(r#"{{"lease": "{lease}", "error": "boom"}}"#)).unwrap();
/// let (_, failure) = body.into_failure();
/// assert!(failure.retryable && failure.retry_after.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    /// The lease of the attempt.
    pub lease: LeaseToken,
    /// What went wrong; stored as `last_error`.
    pub error: String,
    /// False fails the execution now, whatever attempts remain; true when
    /// absent.
    #[serde(default = "default_true")]
    pub retryable: bool,
    /// Overrides the backoff before the next attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl FailBody {
    /// The body reporting `failure` for `lease`.
    pub fn new(lease: &LeaseToken, failure: Failure) -> Self {
        FailBody {
            lease: lease.clone(),
            error: failure.error,
            retryable: failure.retryable,
            retry_after_ms: failure.retry_after.map(|d| d.as_millis() as u64),
        }
    }

    /// The lease and the failure it reports.
    pub fn into_failure(self) -> (LeaseToken, Failure) {
        let failure = Failure {
            error: self.error,
            retryable: self.retryable,
            retry_after: self.retry_after_ms.map(Duration::from_millis),
        };
        (self.lease, failure)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn unknown_renew_statuses_read_as_lost() {
        let doc = r#"{"leases": [{"token": "a", "status": "paused", "expires_at": null},
            {"token": "b", "status": "frozen-by-a-newer-server", "expires_at": null}]}"#;
        let answer: RenewAnswer = serde_json::from_str(doc).unwrap();
        assert_eq!(answer.leases[0].status, RenewStatus::Paused);
        assert_eq!(answer.leases[1].status, RenewStatus::Lost);
    }
    use baton_core::PartitionCount;

    #[test]
    fn a_claim_body_names_every_lane_once() {
        let lane = |n: &str| Lane::new(n).unwrap();
        let body: ClaimBody =
            serde_json::from_str(r#"{"worker_id": "w1", "lanes": ["b", "a", "b"]}"#).unwrap();
        let (request, _) = body.into_request(lane("a")).unwrap();
        assert_eq!(request.lanes, [lane("a"), lane("b")]);
        // Built from a request, the first lane goes in the URL, the rest in
        // `lanes`; a one-lane body has no `lanes` at all.
        let worker = WorkerId::new("w1").unwrap();
        let ns = Namespace::new("n").unwrap();
        let one = ClaimRequest::new(ns, lane("a"), worker, 1);
        let json = serde_json::to_value(ClaimBody::new(&one, 1, Duration::ZERO)).unwrap();
        assert!(json.get("lanes").is_none(), "{json}");
        let two = one.with_lane(lane("b"));
        let json = serde_json::to_value(ClaimBody::new(&two, 1, Duration::ZERO)).unwrap();
        assert_eq!(json["lanes"], serde_json::json!(["b"]));
    }

    #[test]
    fn a_claim_round_trips() {
        let id = ExecutionId::generate(PartitionCount::DEFAULT);
        let claim = Claim {
            session: None,
            version: None,
            id: id.clone(),
            namespace: Namespace::new("n").unwrap(),
            lane: Lane::new("l").unwrap(),
            kind: Kind::new("k").unwrap(),
            payload: br#"{"a":[1,2]}"#.to_vec(),
            attempt: 2,
            lease: LeaseToken::new(id, 2, 9),
            lease_expires_at: "2030-01-01T00:00:30Z".parse().unwrap(),
            deadline: None,
            tags: BTreeMap::new(),
            upstream: BTreeMap::new(),
            waits: Vec::new(),
            signals: Vec::new(),
            steps: BTreeMap::new(),
        };
        let wire = serde_json::to_value(ClaimedExecution::from(&claim)).unwrap();
        assert_eq!(wire["lease"]["expires_at"], "2030-01-01T00:00:30.000Z");
        assert_eq!(wire["payload"]["a"][1], 2);
        assert!(wire.get("upstream").is_none(), "{wire}");
        let back: ClaimedExecution = serde_json::from_value(wire).unwrap();
        assert_eq!(back.into_claim().unwrap(), claim);
        // With dependencies: every upstream's state and result as JSON.
        let up = ExecutionId::generate(PartitionCount::DEFAULT);
        let failed = ExecutionId::generate(PartitionCount::DEFAULT);
        let with_deps = Claim {
            upstream: BTreeMap::from([
                (
                    up.clone(),
                    Upstream {
                        state: State::Completed,
                        result: Some(br#"{"n":1}"#.to_vec()),
                    },
                ),
                (
                    failed.clone(),
                    Upstream {
                        state: State::Failed,
                        result: None,
                    },
                ),
            ]),
            ..claim
        };
        let wire = serde_json::to_value(ClaimedExecution::from(&with_deps)).unwrap();
        assert_eq!(wire["upstream"][up.to_string()]["result"]["n"], 1);
        assert_eq!(wire["upstream"][failed.to_string()]["state"], "failed");
        assert!(wire["upstream"][failed.to_string()]["result"].is_null());
        let back: ClaimedExecution = serde_json::from_value(wire).unwrap();
        assert_eq!(back.into_claim().unwrap(), with_deps);
    }

    #[test]
    fn a_failure_round_trips() {
        let lease = LeaseToken::new(ExecutionId::generate(PartitionCount::DEFAULT), 1, 7);
        let failure = Failure::retry_after("busy", Duration::from_millis(1500));
        let wire = serde_json::to_value(FailBody::new(&lease, failure.clone())).unwrap();
        assert_eq!(wire["retry_after_ms"], 1500);
        let body: FailBody = serde_json::from_value(wire).unwrap();
        assert_eq!(body.into_failure(), (lease.clone(), failure));
        let plain = serde_json::to_value(FailBody::new(&lease, Failure::permanent("x"))).unwrap();
        assert!(plain.get("retry_after_ms").is_none());
    }

    #[test]
    fn a_result_that_is_not_json_is_sent_as_a_string() {
        let lease = LeaseToken::new(ExecutionId::generate(PartitionCount::DEFAULT), 1, 7);
        let body = CompleteBody::new(&lease, b"plain").unwrap();
        assert_eq!(body.result.unwrap().get(), "\"plain\"");
    }
}
