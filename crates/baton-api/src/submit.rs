//! Submitting: `POST /v1/executions` and `POST /v1/executions/batch`.

use std::collections::{BTreeMap, BTreeSet};

use baton_core::{
    Backoff, CapabilityName, ChildKey, CreateOutcome, DependencyMode, DependencyPolicy,
    EngineError, ExecutionId, IdempotencyKey, Kind, Lane, Namespace, NewExecution, Result,
    RetryPolicy, State, TagKey, Timestamp, UpstreamFailure,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{DEFAULT_NAME, check_json, namespace_or_default, raw_bytes, raw_json};

fn default_attempts() -> u32 {
    RetryPolicy::default().max_attempts
}

/// One submission, the body of `POST /v1/executions`. Only `kind` is
/// required; the defaults are namespace and lane `default`, payload `null`,
/// priority 0, no delay, 3 attempts and [`Backoff::default`].
///
/// Field values are checked by the backend ([`NewExecution::validate`]), so
/// every backend rejects the same input.
///
/// ```
/// use baton_api::SubmitBody;
/// let body: SubmitBody = serde_json::from_str(r#"{"kind": "email.send", "payload": {"to": "a@example.com"}}"#).unwrap();
/// let new = body.into_new().unwrap();
/// assert_eq!((new.namespace.as_str(), new.lane.as_str()), ("default", "default"));
/// assert_eq!(new.payload, br#"{"to": "a@example.com"}"#);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// Tenant; `default` when absent.
    #[serde(default)]
    pub namespace: Option<Namespace>,
    /// Queue; `default` when absent.
    #[serde(default)]
    pub lane: Option<Lane>,
    /// Handler name.
    pub kind: Kind,
    /// Any JSON value, stored exactly as sent; `null` when absent.
    #[serde(default)]
    pub payload: Option<Box<RawValue>>,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i32,
    /// Delay before the execution is eligible, in milliseconds.
    #[serde(default)]
    pub delay_ms: i64,
    /// Absolute time before which the execution is not eligible.
    #[serde(default)]
    pub run_at: Option<Timestamp>,
    /// Time after which an unfinished execution expires.
    #[serde(default)]
    pub deadline: Option<Timestamp>,
    /// Attempts in total, including the first.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Delays between attempts.
    #[serde(default)]
    pub backoff: Option<BackoffBody>,
    /// A repeat in the same namespace and lane answers the first execution.
    #[serde(default)]
    pub idempotency_key: Option<IdempotencyKey>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: BTreeMap<TagKey, String>,
    /// Capabilities a worker must offer to claim it.
    #[serde(default)]
    pub capabilities: BTreeSet<CapabilityName>,
    /// The execution that submitted this one.
    #[serde(default)]
    pub parent: Option<ExecutionId>,
    /// Deduplicates among one parent's children: a repeat answers the first
    /// child with `created: false`. Needs `parent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_key: Option<ChildKey>,
    /// Executions of the same flow this one runs after; it is `blocked`
    /// until its `dependency_policy` is met. Needs `parent`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ExecutionId>,
    /// When the dependencies count as met; `all_of` / `skip` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency_policy: Option<DependencyPolicyBody>,
    /// The session it belongs to: the worker holding the session's lock
    /// alone claims it. Not with `parent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<baton_core::SessionName>,
    /// The handler version it was written for (`2`, `2.1`, `2.1.7`): only
    /// claims whose version range contains it take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<baton_core::Version>,
}

/// The `dependency_policy` object of a submission:
/// `{"mode": "all_of"|"any_of"|"quorum", "k": 2, "on_upstream_failure":
/// "skip"|"fail"|"run"}`; `k` only (and always) with `quorum`.
///
/// ```
/// use baton_api::DependencyPolicyBody;
/// let body: DependencyPolicyBody =
///     serde_json::from_str(r#"{"mode": "quorum", "k": 2, "on_upstream_failure": "run"}"#).unwrap();
/// assert_eq!(body.resolve().unwrap().to_string(), "quorum:2;run");
/// let no_k: DependencyPolicyBody = serde_json::from_str(r#"{"mode": "quorum"}"#).unwrap();
/// assert!(no_k.resolve().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependencyPolicyBody {
    /// `all_of` (the default), `any_of` or `quorum`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// For `quorum`: how many upstreams must complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    /// What happens once the policy can no longer be met; `skip` when
    /// absent.
    #[serde(default)]
    pub on_upstream_failure: UpstreamFailure,
}

fn default_mode() -> String {
    "all_of".into()
}

impl DependencyPolicyBody {
    /// The policy these fields describe.
    ///
    /// # Errors
    /// `InvalidInput` for an unknown mode, `quorum` without `k`, or `k`
    /// with another mode.
    pub fn resolve(&self) -> Result<DependencyPolicy> {
        let mode = match (self.mode.as_str(), self.k) {
            ("all_of", None) => DependencyMode::AllOf,
            ("any_of", None) => DependencyMode::AnyOf,
            ("quorum", Some(k)) => DependencyMode::Quorum(k),
            ("quorum", None) => {
                return Err(EngineError::invalid(
                    "dependency_policy.k",
                    "null",
                    "mode quorum needs k, how many upstream executions must complete",
                ));
            }
            ("all_of" | "any_of", Some(k)) => {
                return Err(EngineError::invalid(
                    "dependency_policy.k",
                    k,
                    "k goes with mode quorum only",
                ));
            }
            (other, _) => {
                return Err(EngineError::invalid(
                    "dependency_policy.mode",
                    other,
                    "expected all_of, any_of or quorum",
                ));
            }
        };
        Ok(DependencyPolicy::new(mode, self.on_upstream_failure))
    }
}

impl From<DependencyPolicy> for DependencyPolicyBody {
    fn from(p: DependencyPolicy) -> Self {
        let (mode, k) = match p.mode {
            DependencyMode::AllOf => ("all_of", None),
            DependencyMode::AnyOf => ("any_of", None),
            DependencyMode::Quorum(k) => ("quorum", Some(k)),
        };
        DependencyPolicyBody {
            mode: mode.into(),
            k,
            on_upstream_failure: p.on_upstream_failure,
        }
    }
}

/// The `backoff` object of a submission; each field defaults to
/// [`Backoff::default`]'s, except that an absent `max_ms` is at least
/// `initial_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffBody {
    /// First delay, in milliseconds.
    #[serde(default)]
    pub initial_ms: Option<u64>,
    /// Longest delay, in milliseconds.
    #[serde(default)]
    pub max_ms: Option<u64>,
    /// Growth factor per attempt.
    #[serde(default)]
    pub multiplier: Option<f64>,
    /// Spread delays randomly (deterministically per execution).
    #[serde(default)]
    pub jitter: Option<bool>,
}

impl BackoffBody {
    /// The backoff these fields describe, defaults filled in.
    ///
    /// ```
    /// let b = baton_api::BackoffBody { initial_ms: Some(120_000), ..Default::default() }.resolve();
    /// assert_eq!((b.initial_ms, b.max_ms), (120_000, 120_000));
    /// ```
    pub fn resolve(self) -> Backoff {
        let d = Backoff::default();
        let initial_ms = self.initial_ms.unwrap_or(d.initial_ms);
        Backoff {
            initial_ms,
            max_ms: self.max_ms.unwrap_or(d.max_ms.max(initial_ms)),
            multiplier: self.multiplier.unwrap_or(d.multiplier),
            jitter: self.jitter.unwrap_or(d.jitter),
        }
    }
}

impl From<Backoff> for BackoffBody {
    fn from(b: Backoff) -> Self {
        BackoffBody {
            initial_ms: Some(b.initial_ms),
            max_ms: Some(b.max_ms),
            multiplier: Some(b.multiplier),
            jitter: Some(b.jitter),
        }
    }
}

impl SubmitBody {
    /// The submission, defaults filled in.
    ///
    /// # Errors
    /// `InvalidInput` for a payload [`check_json`] refuses (too deeply
    /// nested, a lone surrogate); other field values are checked later, by
    /// the backend.
    pub fn into_new(self) -> Result<NewExecution> {
        if let Some(payload) = &self.payload {
            check_json("payload", payload.get())?;
        }
        let retry = RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: self.backoff.map(BackoffBody::resolve).unwrap_or_default(),
        };
        let lane = match self.lane {
            Some(lane) => lane,
            None => Lane::new(DEFAULT_NAME)?,
        };
        let mut new = NewExecution::new(
            namespace_or_default(self.namespace)?,
            lane,
            self.kind,
            raw_bytes(self.payload),
        )
        .with_priority(self.priority)
        .with_delay_ms(self.delay_ms)
        .with_retry(retry);
        if let Some(t) = self.run_at {
            new = new.with_run_at(t);
        }
        if let Some(t) = self.deadline {
            new = new.with_deadline(t);
        }
        if let Some(k) = self.idempotency_key {
            new = new.with_idempotency_key(k);
        }
        for (k, v) in self.tags {
            new = new.with_tag(k, v);
        }
        for c in self.capabilities {
            new = new.with_capability(c);
        }
        if let Some(p) = self.parent {
            new = new.with_parent(p);
        }
        if let Some(k) = self.child_key {
            new = new.with_child_key(k);
        }
        if let Some(p) = &self.dependency_policy {
            new = new.with_dependency_policy(p.resolve()?);
        }
        if let Some(s) = self.session {
            new = new.with_session(s);
        }
        if let Some(v) = self.version {
            new = new.with_version(v);
        }
        Ok(new.with_dependencies(self.depends_on))
    }

    /// The body that submits `new`, every field written out.
    ///
    /// # Errors
    /// `InvalidInput` when the payload is not JSON (over HTTP a payload must
    /// be a JSON value) or is JSON that [`check_json`] refuses. The payload
    /// is sent as its text, unchanged.
    pub fn from_new(new: &NewExecution) -> Result<Self> {
        let payload = raw_json("payload", &new.payload)?;
        Ok(SubmitBody {
            namespace: Some(new.namespace.clone()),
            lane: Some(new.lane.clone()),
            kind: new.kind.clone(),
            payload: Some(payload),
            priority: new.priority,
            delay_ms: new.delay_ms,
            run_at: new.run_at,
            deadline: new.deadline,
            max_attempts: new.retry.max_attempts,
            backoff: Some(new.retry.backoff.into()),
            idempotency_key: new.idempotency_key.clone(),
            tags: new.tags.clone(),
            capabilities: new.required_capabilities.clone(),
            parent: new.parent.clone(),
            child_key: new.child_key.clone(),
            depends_on: new.depends_on.clone(),
            dependency_policy: (!new.depends_on.is_empty()).then(|| new.dependency_policy.into()),
            session: new.session.clone(),
            version: new.version.clone(),
        })
    }
}

/// The body of `POST /v1/executions/batch`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// The submissions; all or none are created.
    pub executions: Vec<SubmitBody>,
}

/// The answer to one submission: `201` when created, `200` for a repeated
/// idempotency key (or a repeated child key under the same parent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// The execution; for a repeated idempotency key or child key, the
    /// first one.
    pub id: ExecutionId,
    /// Its state right after the call.
    pub state: State,
    /// False when an earlier execution with the same key was answered.
    pub created: bool,
}

impl From<&CreateOutcome> for Created {
    fn from(o: &CreateOutcome) -> Self {
        Created {
            id: o.id.clone(),
            state: o.state,
            created: o.created,
        }
    }
}

impl From<Created> for CreateOutcome {
    fn from(c: Created) -> Self {
        CreateOutcome {
            id: c.id,
            state: c.state,
            created: c.created,
        }
    }
}

/// The answer to a batch: one [`Created`] per submission, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCreated {
    /// The outcomes, in request order.
    pub results: Vec<Created>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use baton_core::EngineError;

    #[test]
    fn a_submission_round_trips() {
        let new = NewExecution::new(
            Namespace::new("shop").unwrap(),
            Lane::new("emails").unwrap(),
            Kind::new("email.send").unwrap(),
            br#"{"to":"a@example.com"}"#.to_vec(),
        )
        .with_priority(3)
        .with_tag(TagKey::new("customer").unwrap(), "42");
        let wire = serde_json::to_value(SubmitBody::from_new(&new).unwrap()).unwrap();
        assert_eq!(wire["payload"], serde_json::json!({"to": "a@example.com"}));
        assert_eq!(wire["run_at"], serde_json::Value::Null);
        assert_eq!(wire["backoff"]["max_ms"], 60_000);
        let back: SubmitBody = serde_json::from_value(wire).unwrap();
        assert_eq!(back.into_new().unwrap(), new);
    }

    #[test]
    fn dependencies_round_trip_and_are_left_out_when_absent() {
        let parent = ExecutionId::generate(baton_core::PartitionCount::DEFAULT);
        let up = ExecutionId::generate(baton_core::PartitionCount::DEFAULT);
        let policy = DependencyPolicy::new(DependencyMode::Quorum(1), UpstreamFailure::Run);
        let new = NewExecution::new(
            Namespace::new("n").unwrap(),
            Lane::new("l").unwrap(),
            Kind::new("k").unwrap(),
            b"null".to_vec(),
        )
        .with_parent(parent)
        .with_dependencies([up.clone()])
        .with_dependency_policy(policy);
        let wire = serde_json::to_value(SubmitBody::from_new(&new).unwrap()).unwrap();
        assert_eq!(wire["depends_on"][0], up.to_string());
        assert_eq!(
            wire["dependency_policy"],
            serde_json::json!({"mode": "quorum", "k": 1, "on_upstream_failure": "run"})
        );
        let back: SubmitBody = serde_json::from_value(wire).unwrap();
        assert_eq!(back.into_new().unwrap(), new);
        let plain: SubmitBody = serde_json::from_str(r#"{"kind": "k"}"#).unwrap();
        let wire = serde_json::to_value(&plain).unwrap();
        assert!(wire.get("depends_on").is_none() && wire.get("dependency_policy").is_none());
        let bad: SubmitBody = serde_json::from_str(
            r#"{"kind": "k", "dependency_policy": {"mode": "all_of", "k": 2}}"#,
        )
        .unwrap();
        assert!(
            bad.into_new()
                .unwrap_err()
                .to_string()
                .contains("dependency_policy.k")
        );
    }

    #[test]
    fn a_child_key_round_trips_and_is_left_out_when_absent() {
        let parent = ExecutionId::generate(baton_core::PartitionCount::DEFAULT);
        let new = NewExecution::new(
            Namespace::new("shop").unwrap(),
            Lane::new("emails").unwrap(),
            Kind::new("k").unwrap(),
            b"1".to_vec(),
        )
        .with_parent(parent.clone())
        .with_child_key(ChildKey::new("shard-7").unwrap());
        let wire = serde_json::to_value(SubmitBody::from_new(&new).unwrap()).unwrap();
        assert_eq!(wire["child_key"], "shard-7");
        assert_eq!(wire["parent"], parent.to_string());
        let back: SubmitBody = serde_json::from_value(wire).unwrap();
        assert_eq!(back.into_new().unwrap(), new);

        let plain = NewExecution::new(
            Namespace::new("shop").unwrap(),
            Lane::new("emails").unwrap(),
            Kind::new("k").unwrap(),
            b"1".to_vec(),
        );
        let wire = serde_json::to_value(SubmitBody::from_new(&plain).unwrap()).unwrap();
        assert!(wire.get("child_key").is_none(), "{wire}");
    }

    #[test]
    fn a_payload_that_is_not_json_cannot_go_over_http() {
        let new = NewExecution::new(
            Namespace::new("shop").unwrap(),
            Lane::new("emails").unwrap(),
            Kind::new("k").unwrap(),
            b"not json".to_vec(),
        );
        let e = SubmitBody::from_new(&new).unwrap_err();
        assert!(matches!(
            e,
            EngineError::InvalidInput {
                field: "payload",
                ..
            }
        ));
    }
}
